from schleuse_governance.main import main

main()
