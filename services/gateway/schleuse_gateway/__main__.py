from schleuse_gateway.main import main

main()
