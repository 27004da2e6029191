def load_data(path=None):
    raise NotImplementedError
