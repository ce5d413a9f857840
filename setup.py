"""Build of the C core `subactor._ext`.

setuptools is used because the extension is a handful of C files with no
generated code and no dependency other than Python's headers: a plain
`Extension` needs no extra build tool in the environment, and
`build_ext --build-lib` gives the AddressSanitizer build its own output
folder without a second build system.

SUBACTOR_ASAN=1 adds -fsanitize=address (see `make asan`).
"""
import glob
import os
import sys

# The C core needs Linux (eventfd(2), Linux thread ids): say so at once
# rather than with a compiler error.
if not sys.platform.startswith("linux"):
    sys.exit(f"subactor supports Linux only (its C core uses eventfd(2)); this is {sys.platform!r}")

from setuptools import Extension, setup  # noqa: E402

cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
ldflags = ["-pthread"]
if os.environ.get("SUBACTOR_ASAN") == "1":
    cflags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1", "-g"]
    ldflags += ["-fsanitize=address"]
else:
    cflags += ["-O2"]

setup(
    ext_modules=[
        Extension(
            "subactor._ext",
            sources=sorted(glob.glob("csrc/*.c")),
            depends=sorted(glob.glob("csrc/*.h")),
            include_dirs=["csrc"],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ]
)
