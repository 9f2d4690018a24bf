from igwlab.cli.app import main

main()
