"""A workflows module that fails when imported (the `broken` example calls it)."""

raise RuntimeError("this module is broken on purpose")
