from indexchat.cli import main

main()
