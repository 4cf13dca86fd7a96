from seqtag.cli import main

raise SystemExit(main())
