import sys; from ferjax.cli import main; sys.exit(main())
