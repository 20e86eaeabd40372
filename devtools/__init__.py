"""Local harness: the CBR emulator and a moto server wired to the function, for `make run` and the tests."""
