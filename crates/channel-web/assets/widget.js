// placeholder: the widget developer overwrites this file
