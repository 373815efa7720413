from ctiwatch.cli import main

raise SystemExit(main())
