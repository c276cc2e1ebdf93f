from darkfab.cli import main

main()
