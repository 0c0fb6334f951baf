-- Tenant codes made from display names (organizations, tenants admin).
local M = {}

-- A tenant code from a display name: lower-case, [a-z0-9_], starting with
-- a letter, 2 to 40 characters; nil when the name has nothing to build on.
function M.from_name(name)
  if not name then
    return nil
  end
  local code = name:lower():gsub("[^a-z0-9]+", "_"):gsub("^[^a-z]+", "")
  code = code:sub(1, 40):gsub("_+$", "")
  if #code < 2 then
    return nil
  end
  return code
end

return M
