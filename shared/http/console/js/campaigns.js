// campaigns.js — to be written
