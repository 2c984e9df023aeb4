-- sink_dead.lua: placeholder until its module lands
return 0
