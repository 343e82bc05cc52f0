// end-to-end tests follow
