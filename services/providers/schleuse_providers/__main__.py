from schleuse_providers.main import main

main()
