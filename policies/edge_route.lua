-- fleetkit edge routing: runs in the ingress gateway's Envoy (an Envoy Lua HTTP filter), after
-- jwt_authn (which copied verified claims into the claim headers) and after json_to_metadata (which
-- parsed the OpenAI body's top-level "model" into dynamic metadata). The rendering prepends
-- `local FLEETKIT = {...}` with the fleet's names, tiers and cohorts (policies/edge.py).
--
-- For every request it sets, from verified claims only (the strip filter removed client copies):
--   tier header    claim value mapped through FLEETKIT.tiers.map, else the default tier
--   tenant header  the tenant claim, when the token carries one
--   cohort header  the cohort claim when it names a known cohort, else a sticky hash of the subject
-- For OpenAI body endpoints it resolves the body's model (served name or alias) to its model
-- service, sets the model header, rewrites the body's model to the served name and its priority to
-- the tier's vLLM priority, and clears the route cache so the VirtualService matches the new headers.
-- Unknown or missing models get an OpenAI-format error from the edge.

local function openai_error(handle, status, message, etype, param, code)
  local body = string.format('{"error":{"message":%s,"type":"%s","param":%s,"code":%s}}',
    FLEETKIT.json_string(message), etype,
    param and ('"' .. param .. '"') or "null", code and ('"' .. code .. '"') or "null")
  handle:respond({[":status"] = tostring(status), ["content-type"] = "application/json"}, body)
end

FLEETKIT.json_string = function(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

-- Sticky bucket 0..99 of a subject: a polynomial hash modulo 2^31-1 (exact in Lua numbers; the
-- same function is policies.edge.sticky_bucket in Python).
local function sticky_bucket(subject)
  local h = 0
  for i = 1, #subject do
    h = (h * 31 + subject:byte(i)) % 2147483647
  end
  return h % 100
end

local function claim(handle, name)
  local header = FLEETKIT.claim_headers[name]
  if header == nil then return nil end
  local value = handle:headers():get(header)
  if value == nil or value == "" then return nil end
  return value
end

local function identity(handle)
  local h = FLEETKIT.headers
  local tier = FLEETKIT.tiers.default
  local tier_claim = claim(handle, "tier")
  if tier_claim ~= nil and FLEETKIT.tiers.map[tier_claim] ~= nil then
    tier = FLEETKIT.tiers.map[tier_claim]
  end
  handle:headers():replace(h.tier, tier)
  local tenant = claim(handle, "tenant")
  if tenant ~= nil and tenant:match("^[%w%._%-]+$") then
    handle:headers():replace(h.tenant, tenant)
  end
  local cohort = claim(handle, "cohort")
  if cohort == nil or FLEETKIT.cohorts.known[cohort] == nil then
    cohort = nil
    local subject = claim(handle, "subject")
    if subject ~= nil then
      local bucket, upto = sticky_bucket(subject), 0
      for _, c in ipairs(FLEETKIT.cohorts.sticky) do
        upto = upto + c.percent
        if bucket < upto then cohort = c.name break end
      end
    end
  end
  if cohort ~= nil then
    handle:headers():replace(h.cohort, cohort)
  end
  return tier
end

local function path_of(handle)
  local path = handle:headers():get(":path") or ""
  return (path:gsub("%?.*$", ""))
end

local function body_endpoint(handle)
  if handle:headers():get(":method") ~= "POST" then return false end
  return FLEETKIT.body_paths[path_of(handle)] == true
end

function envoy_on_request(handle)
  local tier = identity(handle)
  if not body_endpoint(handle) then
    handle:clearRouteCache()
    return
  end
  local meta = handle:streamInfo():dynamicMetadata():get(FLEETKIT.metadata_namespace)
  local requested = meta and meta.model
  if type(requested) ~= "string" or requested == "" then
    openai_error(handle, 400, "The request body must be a JSON object with a 'model' string.",
      "invalid_request_error", "model", nil)
    return
  end
  local model = FLEETKIT.models[requested]
  if model == nil then
    openai_error(handle, 404, "The model `" .. requested .. "` does not exist.",
      "invalid_request_error", "model", "model_not_found")
    return
  end
  handle:headers():replace(FLEETKIT.headers.model, model.service)
  if FLEETKIT.usage_namespace ~= nil then
    handle:streamInfo():dynamicMetadata():set(FLEETKIT.usage_namespace, "endpoint", path_of(handle))
  end
  -- JSON parsers keep the last of duplicate keys (Python's json, pydantic/jiter), so members
  -- appended before the closing brace override whatever the client sent under those names.
  local body = handle:body()
  local text = body:getBytes(0, body:length())
  local head = text:match("^(.*)}%s*$")
  if head == nil then
    openai_error(handle, 400, "The request body must be a JSON object.", "invalid_request_error", nil, nil)
    return
  end
  local extra = '"model":' .. FLEETKIT.json_string(model.served)
  if FLEETKIT.tiers.priority[tier] ~= nil then
    extra = extra .. ',"priority":' .. FLEETKIT.tiers.priority[tier]
  end
  body:setBytes(head .. "," .. extra .. "}")
  handle:headers():replace("content-length", tostring(body:length()))
  handle:clearRouteCache()
end

-- Token usage of one response: the last top-level `"usage":{...}` object in the body. A JSON
-- string cannot hold an unescaped `"usage"` key (quotes inside strings are escaped), so generated
-- text cannot forge it. Non-streaming responses carry it last; a stream carries it in its final
-- chunk when the client sent `stream_options: {"include_usage": true}` (or cumulatively in every
-- chunk with `continuous_usage_stats`, the last one wins).
local function usage_of(text)
  local found = nil
  for obj in text:gmatch('"usage"%s*:%s*(%b{})') do
    found = obj
  end
  if found == nil then return nil end
  local prompt = tonumber(found:match('"prompt_tokens"%s*:%s*(%d+)'))
  local completion = tonumber(found:match('"completion_tokens"%s*:%s*(%d+)')) or 0
  if prompt == nil then return nil end
  return prompt, completion
end

-- Reads the response as it streams through (bodyChunks() does not buffer: each chunk goes on to the
-- client as soon as the script has looked at it), keeping only a short tail across chunk borders.
-- The counts land in dynamic metadata, which the gateway's usage access log reads at stream end.
-- The counts are written as soon as a chunk carries them, not after the loop: a client that stops
-- reading at `data: [DONE]` may close the connection before the upstream's end of stream reaches this
-- script, and the loop (with anything after it) would then never finish.
local function count_usage(handle)
  local tail, prompt, completion = "", nil, nil
  for chunk in handle:bodyChunks() do
    local window = tail .. chunk:getBytes(0, chunk:length())
    local p, c = usage_of(window)
    if p ~= nil and (p ~= prompt or c ~= completion) then
      prompt, completion = p, c
      -- objects from the handle are only valid until the script yields: fetched here, used at once
      local meta = handle:streamInfo():dynamicMetadata()
      meta:set(FLEETKIT.usage_namespace, "prompt_tokens", prompt)
      meta:set(FLEETKIT.usage_namespace, "completion_tokens", completion)
    end
    tail = window:sub(-FLEETKIT.usage_window)
  end
end

function envoy_on_response(handle)
  local status = handle:headers():get(":status")
  -- local rate limiting (a later filter) answers 429 with a plain-text body: give OpenAI clients
  -- the error object they parse.
  if status == "429" and (handle:headers():get("x-envoy-ratelimited") ~= nil
      or handle:headers():get("retry-after") ~= nil) then
    local body = handle:body()
    body:setBytes('{"error":{"message":"Rate limit exceeded for your tier or tenant; retry after the '
      .. 'Retry-After interval.","type":"rate_limit_exceeded","param":null,"code":"rate_limit_exceeded"}}')
    handle:headers():replace("content-type", "application/json")
    handle:headers():replace("content-length", tostring(body:length()))
    return
  end
  -- usage accounting: successful answers of the OpenAI body endpoints (the request path marked them)
  if status ~= "200" or FLEETKIT.usage_namespace == nil then return end
  local marks = handle:streamInfo():dynamicMetadata():get(FLEETKIT.usage_namespace)
  if marks == nil or marks.endpoint == nil then return end
  count_usage(handle)
end
