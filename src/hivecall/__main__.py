from hivecall.cli import main

main()
