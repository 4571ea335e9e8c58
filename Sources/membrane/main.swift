print("membrane")
