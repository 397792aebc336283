// main.js — starts the console once every page has registered itself.
C.start();
