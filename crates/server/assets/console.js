// placeholder: the demo developer overwrites this file
