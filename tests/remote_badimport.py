"""A module that cannot be imported (for the enabled-module import check)."""
import no_such_module_for_subactor_tests  # noqa: F401
