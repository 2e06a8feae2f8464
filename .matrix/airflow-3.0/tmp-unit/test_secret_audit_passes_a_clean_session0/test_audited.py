def test_ok():
    print('hello')