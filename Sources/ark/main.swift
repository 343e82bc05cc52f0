print("ark")
