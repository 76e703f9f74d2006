from datagc.cli import main

main()
