from sleeptrack.cli import main

main()
