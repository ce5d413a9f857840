"""A context with a bidirectional stream: the actor squares what it gets,
and its errors come back with their traceback."""
import trio

import subactor


@subactor.context
async def squarer(ctx, limit: int):
    await ctx.started(f"squaring up to {limit}")
    async with ctx.open_stream() as stream:
        async for x in stream:
            if x > limit:
                raise ValueError(f"{x} is over the limit {limit}")
            await stream.send(x * x)


async def main():
    async with subactor.open_nursery() as an:
        p = await an.start_actor("squarer", enable_modules=[__name__])
        async with p.open_context(squarer, limit=10) as (ctx, greeting):
            print(greeting)
            async with ctx.open_stream() as stream:
                for x in range(1, 6):
                    await stream.send(x)
                    print(x, "->", await stream.receive())
        try:
            async with p.open_context(squarer, limit=3) as (ctx, _):
                async with ctx.open_stream() as stream:
                    await stream.send(7)
                    await stream.receive()
        except subactor.RemoteActorError as err:
            print("the actor said:", str(err).splitlines()[0])
        await an.cancel()


if __name__ == "__main__":
    trio.run(main)
