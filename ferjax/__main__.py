from ferjax.cli import entry

entry()
