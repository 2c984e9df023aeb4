-- trim.lua: placeholder until its module lands
return 0
