from schleuse_dlp.main import main

main()
