// registrations.js — to be written
