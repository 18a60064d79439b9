-- Which pairs a shard handles: deterministic, balanced per category and in
-- total. Pair i (1-based) of a category goes to shard (offset + i - 1) % N,
-- where offset is the number of pairs in the dataset's earlier categories
-- (file order), so every category is split within one pair and the leftover
-- pairs rotate over the shards instead of all landing on shard 0.
local shard = {}
shard.__index = shard

-- ds: a Dataset (or anything with :categories() and :count(cat));
-- index, count: this shard, 0 <= index < count.
function shard.new(ds, index, count)
  index, count = index or 0, count or 1
  if math.type(index) ~= "integer" or math.type(count) ~= "integer" or count < 1 or index < 0 or index >= count then
    error(("shard: bad shard %s/%s (want 0 <= i < N)"):format(tostring(index), tostring(count)), 2)
  end
  local offsets, total = {}, 0
  for _, cat in ipairs(ds:categories()) do
    offsets[cat] = total
    total = total + ds:count(cat)
  end
  return setmetatable({ index = index, count = count, offsets = offsets, ds = ds }, shard)
end

-- The shard that handles pair i of cat.
function shard:of(cat, i)
  return ((self.offsets[cat] or 0) + i - 1) % self.count
end

function shard:owns(cat, i)
  return self:of(cat, i) == self.index
end

-- How many of cat's pairs this shard handles.
function shard:size(cat)
  local n = self.ds:count(cat)
  local first = (self.index - (self.offsets[cat] or 0)) % self.count   -- 0-based position of the first owned pair
  if first >= n then return 0 end
  return (n - 1 - first) // self.count + 1
end

-- The output folder of a shard inside run.out (N > 1), e.g. out/shard-1-of-3.
function shard.folder(out, index, count)
  if count <= 1 then return out end
  return ("%s/shard-%d-of-%d"):format(out, index, count)
end

return shard
