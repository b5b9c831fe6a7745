from schleuse_ingest.main import main

main()
