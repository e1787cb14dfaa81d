from pointseg.cli import main

raise SystemExit(main())
