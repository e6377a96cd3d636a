from benchmarks.run import main

if __name__ == "__main__":  # not when a benchmark's child process imports it
    main()
