from podmill.cli import main

main()
