-- wrk script for bench/stick.sh: every request carries an X-Key header.
-- KEYS distinct keys per connection thread, cycled (0: every key new).
-- Each wrk thread prefixes its keys so threads never collide.
local keys = tonumber(os.getenv("STICK_KEYS") or "0")
local prefix = os.getenv("STICK_PREFIX") or "k"
local n = 0
local id = 0

function setup(thread)
    id = id + 1
    thread:set("tid", id)
end

function request()
    n = n + 1
    local k = n
    if keys > 0 then
        k = n % keys
    end
    return wrk.format("GET", "/", { ["X-Key"] = prefix .. (tid or 0) .. "-" .. k })
end
