// templates.js — to be written
