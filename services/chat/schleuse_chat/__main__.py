from schleuse_chat.main import main

main()
