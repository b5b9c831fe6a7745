from schleuse_analytics.main import main

main()
