from kubeling.cli.main import main

main()
