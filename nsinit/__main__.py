from nsinit.cli import main

raise SystemExit(main())
