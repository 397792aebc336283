// recurring.js — to be written
