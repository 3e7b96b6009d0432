from metwatch.cli import main

main()
