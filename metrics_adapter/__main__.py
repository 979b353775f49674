from metrics_adapter.cli import main

raise SystemExit(main())
