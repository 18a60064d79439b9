-- The interactive report page's assets: its CSS and its script (vanilla JS,
-- no library, no network). report.lua writes the HTML around them; the data
-- arrive as script chunks (`EH.chunk(k, [rows])`) because a page opened
-- from disk may not fetch() a file beside it, while <script src> works in
-- every browser from file://.
--
-- A chunk carries the pairs as the JSON report has them and their pictures
-- (report.page_files); the loader keeps each as a row: c category, i id, n
-- instruction, d description, s score, e error, t judge text, m
-- score_method, p probs, es/ss edit and score seconds, im edited image, o
-- original, to/te thumbnails, x extra input pictures, pv provenance {edit,
-- score}. Paths are relative to the page.
local page = {}

page.CSS = [[
[hidden]{display:none!important}
body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans CJK JP",sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}
th{background:#e8eef8}td.l,th.l{text-align:left}tr.overall td{font-weight:bold;background:#f4f4f4}
.hists{display:flex;flex-wrap:wrap;gap:12px}.fail{color:#b00020}.score{font-size:18px;font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dd{margin:0}
#controls{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;padding:8px;background:#f3f5f9;border:1px solid #d4dbe8;position:sticky;top:0;z-index:2}
#controls label{font-size:13px}#controls input[type=number]{width:4.5em}#count{font-weight:bold}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px;margin-top:10px}
.card{border:1px solid #ccc;padding:6px;background:#fafafa;cursor:pointer;font-size:13px;min-height:120px}
.card:hover{border-color:#4a78c2}.card .imgs{display:flex;gap:4px}.card figure{margin:0;flex:1;text-align:center}
.card img{max-width:100%;max-height:160px}.card .imgs figcaption,.lbl{font-size:11px;color:#555;text-transform:uppercase}
.card .txt{color:#444;overflow:hidden;display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical}
.noimg{display:inline-block;padding:30px 8px;color:#999;border:1px dashed #ccc}
#pager{margin:10px 0}#pager button{margin:0 4px}
#detail{position:fixed;inset:0;background:rgba(0,0,0,.55);z-index:5;display:none;overflow:auto}
#detail.open{display:block}#detail .box{background:#fff;margin:20px auto;padding:16px;max-width:96vw;width:max-content;min-width:60vw}
#detail .pair{display:flex;gap:12px;align-items:flex-start}#detail .pane{overflow:auto;max-width:46vw;max-height:75vh}
#detail .pane img{display:block}.stack{position:relative;display:inline-block}.stack img{display:block}
.stack .top{position:absolute;left:0;top:0}pre.judge{white-space:pre-wrap;background:#f6f6f6;padding:8px;max-width:90vw}
.more{display:flex;gap:8px;flex-wrap:wrap}.more img{max-height:200px}.bars rect{fill:#4a78c2}.bars rect.hi{fill:#c2504a}
svg.delta line.ci{stroke:#4a78c2;stroke-width:2}svg.delta circle{fill:#4a78c2}
.ab{font-weight:bold;padding:0 4px;border-radius:3px;color:#fff}.ab.a{background:#7a6ab8}.ab.b{background:#3a9a6a}
]]

-- The explorer: state <-> location.hash, filter, sort, page, detail view.
-- Reads EH.meta (page size, score range, chunk list) and EH.rows.
page.JS = [=[
(function(){
'use strict';
var EH=window.EH, rows=EH.rows, meta=EH.meta, $=function(id){return document.getElementById(id);};
var state={}, view=[], dirty=false, PAGE=meta.page_size||60;
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
function num(v){return typeof v==='number'&&isFinite(v);}
function fmt(v,d){return num(v)?v.toFixed(d==null?2:d):'—';}
// probs: an array over the score range or an object score -> p; as [[score,p]...]
function dist(r){
  var p=r.p; if(!p||typeof p!=='object')return null; var out=[];
  if(Array.isArray(p)){var lo=meta.score_range?meta.score_range[0]:0;
    for(var i=0;i<p.length;i++){var x=p[i]; if(Array.isArray(x))out.push([+x[0],+x[1]]); else if(num(x))out.push([lo+i,x]);}}
  else for(var k in p){if(num(p[k]))out.push([+k,p[k]]);}
  out.sort(function(a,b){return a[0]-b[0];}); return out.length?out:null;
}
function entropy(r){
  if(r._h!==undefined)return r._h; var d=dist(r),h=null;
  if(d){h=0;var z=0;d.forEach(function(x){z+=x[1];});
    d.forEach(function(x){var q=x[1]/(z||1); if(q>0)h-=q*Math.log(q);});}
  return (r._h=h);
}
function hay(r){return r._s||(r._s=[r.i,r.n,r.d,r.t,r.e].join('\n').toLowerCase());}
function readHash(){
  var q=new URLSearchParams(location.hash.replace(/^#/,'')); state={};
  ['cat','status','min','max','method','q','sort','page','pair'].forEach(function(k){var v=q.get(k); if(v!==null&&v!=='')state[k]=v;});
  $('f-cat').value=state.cat||''; $('f-status').value=state.status||''; $('f-min').value=state.min||'';
  $('f-max').value=state.max||''; $('f-method').value=state.method||''; $('f-q').value=state.q||'';
  $('f-sort').value=state.sort||'';
}
function writeHash(){
  var q=new URLSearchParams();
  Object.keys(state).forEach(function(k){if(state[k]!==undefined&&state[k]!=='')q.set(k,state[k]);});
  var h=q.toString(); history.replaceState(null,'',h?'#'+h:location.pathname+location.search);
}
var SORTS={
  'score-asc':function(r){return num(r.s)?r.s:Infinity;}, 'score-desc':function(r){return num(r.s)?-r.s:Infinity;},
  'edit-desc':function(r){return num(r.es)?-r.es:Infinity;}, 'edit-asc':function(r){return num(r.es)?r.es:Infinity;},
  'conf-desc':function(r){var h=entropy(r);return h==null?Infinity:h;}, 'conf-asc':function(r){var h=entropy(r);return h==null?Infinity:-h;}
};
function apply(){
  var t0=performance.now(), cat=state.cat, st=state.status, m=state.method;
  var lo=state.min!==undefined?parseFloat(state.min):NaN, hi=state.max!==undefined?parseFloat(state.max):NaN;
  var q=(state.q||'').toLowerCase(), out=[];
  for(var i=0;i<rows.length;i++){var r=rows[i];
    if(cat&&r.c!==cat)continue;
    var scored=num(r.s);
    if(st==='failed'&&scored)continue; if(st==='scored'&&!scored)continue;
    if(!isNaN(lo)&&!(scored&&r.s>=lo))continue; if(!isNaN(hi)&&!(scored&&r.s<hi))continue;
    if(m&&(r.m||'')!==m)continue;
    if(q&&hay(r).indexOf(q)<0)continue;
    out.push(r);}
  var key=SORTS[state.sort];
  if(key){   // keys in a typed array, an index sort: no object compares
    var ks=new Float64Array(out.length), ix=new Uint32Array(out.length);
    for(var j=0;j<out.length;j++){ks[j]=key(out[j]);ix[j]=j;}
    ix.sort(function(a,b){var d=ks[a]-ks[b]; return d<0?-1:d>0?1:a-b;});
    var sorted=new Array(out.length); for(j=0;j<out.length;j++)sorted[j]=out[ix[j]]; out=sorted;}
  view=out; EH.last_filter_ms=performance.now()-t0; render();
}
function img(src,label,cls){
  if(!src)return '<span class="noimg">'+esc(label)+': none</span>';
  return '<img loading="lazy" class="'+(cls||'')+'" src="'+esc(src)+'" alt="'+esc(label)+'" data-label="'+esc(label)+'">';
}
function card(r,k){
  var sc=num(r.s)?'<span class="score">'+fmt(r.s)+'</span>':'<span class="fail">failed: '+esc(r.e)+'</span>';
  return '<div class="card" data-k="'+k+'" id="card-'+esc(r.c)+'-'+esc(r.i)+'"><div class="imgs">'
    +'<figure>'+img(r.to,'original')+'<figcaption>original / 原图</figcaption></figure>'
    +'<figure>'+img(r.te,'edited')+'<figcaption>edited / 编辑后</figcaption></figure></div>'
    +'<div><b>'+esc(r.c)+' / '+esc(r.i)+'</b> '+sc+(r.m?' <small>('+esc(r.m)+')</small>':'')+'</div>'
    +'<div>'+esc(r.n)+'</div><div class="txt">'+esc(r.t)+'</div></div>';
}
function render(){
  var n=view.length, pages=Math.max(1,Math.ceil(n/PAGE)), p=Math.min(pages,Math.max(1,parseInt(state.page||'1',10)||1));
  var html=[]; for(var k=(p-1)*PAGE;k<Math.min(n,p*PAGE);k++)html.push(card(view[k],k));
  $('gallery').innerHTML=html.join('');
  if(html.length&&!EH.first_cards_ms)EH.first_cards_ms=performance.now();   // for tools/bench/report
  $('count').textContent=n+' / '+rows.length+(EH.loading?' (loading…)':'');
  $('pageno').textContent='page '+p+' / '+pages;
  $('prev').disabled=p<=1; $('next').disabled=p>=pages;
  if(state.pair)openDetail(state.pair); else closeDetail(true);
}
function bars(d,score){
  if(!d)return '<p>no score distribution (probs) for this pair</p>';
  var W=22,H=80,mx=0; d.forEach(function(x){mx=Math.max(mx,x[1]);});
  var s='<svg class="bars" width="'+(d.length*W+10)+'" height="'+(H+30)+'" role="img" aria-label="score distribution">';
  d.forEach(function(x,i){var h=Math.round(H*x[1]/(mx||1));
    s+='<rect class="'+(num(score)&&Math.round(score)===x[0]?'hi':'')+'" x="'+(5+i*W)+'" y="'+(H-h+5)
      +'" width="'+(W-3)+'" height="'+h+'"><title>'+x[0]+': '+x[1].toFixed(3)+'</title></rect>'
      +'<text x="'+(5+i*W+(W-3)/2)+'" y="'+(H+20)+'" font-size="10" text-anchor="middle">'+x[0]+'</text>';});
  return s+'</svg>';
}
function prov(pv){
  if(!pv)return 'this run ('+esc(meta.run_dir)+')';
  function one(x){return x&&x.run?esc(x.run)+(x.run_key?' <small>('+esc(x.run_key)+')</small>':''):'—';}
  return 'edit: '+one(pv.edit)+'; score: '+one(pv.score);
}
function find(key){for(var i=0;i<rows.length;i++){if(rows[i].c+'/'+rows[i].i===key)return rows[i];}return null;}
function openDetail(key){
  var r=find(key); if(!r){if(!EH.loading)closeDetail();return;}
  var more=(r.x||[]).map(function(s,i){return '<figure>'+img(s,'input '+(i+2))+'<figcaption>input picture '+(i+2)+'</figcaption></figure>';}).join('');
  $('detail-body').innerHTML='<h2>'+esc(r.c)+' / '+esc(r.i)+' — '
    +(num(r.s)?'score '+fmt(r.s):'<span class="fail">failed</span>')+'</h2>'
    +'<p><b>instruction / 指令:</b> '+esc(r.n)+'</p>'+(r.d?'<p><b>description / 描述:</b> '+esc(r.d)+'</p>':'')
    +'<p><button id="mode">mode: side by side</button> <input id="slider" type="range" min="0" max="100" value="50" hidden></p>'
    +'<div id="views"><div class="pair" id="side"><div><div class="lbl">original / 原图</div><div class="pane">'
    +img(r.o||r.to,'original')+'</div></div>'
    +'<div><div class="lbl">edited / 编辑后</div><div class="pane">'+img(r.im||r.te,'edited')+'</div></div></div>'
    +'<div id="stackview" hidden><div class="lbl" id="stacklbl"></div><div class="stack">'
    +img(r.o||r.to,'original','under')+img(r.im||r.te,'edited','top')+'</div></div></div>'
    +(more?'<h3>more input pictures / 其他输入图</h3><div class="more">'+more+'</div>':'')
    +(r.e?'<p class="fail"><b>error:</b> '+esc(r.e)+'</p>':'')
    +'<h3>judge / 评语'+(r.m?' ('+esc(r.m)+')':'')+'</h3><pre class="judge">'+esc(r.t)+'</pre>'
    +'<h3>score distribution / 分数分布</h3>'+bars(dist(r),r.s)
    +'<p><b>timings:</b> edit '+fmt(r.es,3)+' s, score '+fmt(r.ss,3)+' s</p><p><b>provenance:</b> '+prov(r.pv)+'</p>';
  $('detail').className='open';
  var modes=['side by side','swipe','blend'],mi=0;
  function setMode(){var m=modes[mi]; $('mode').textContent='mode: '+m;
    $('side').hidden=m!=='side by side'; $('stackview').hidden=m==='side by side'; $('slider').hidden=m==='side by side';
    $('stacklbl').textContent=m==='swipe'?'left: edited | right: original':'edited over original (opacity)'; slide();}
  function slide(){var v=+$('slider').value,top=document.querySelector('#stackview .top'); if(!top)return;
    if(modes[mi]==='swipe'){top.style.opacity=1;top.style.clipPath='inset(0 '+(100-v)+'% 0 0)';}
    else{top.style.clipPath='none';top.style.opacity=v/100;}}
  $('mode').onclick=function(){mi=(mi+1)%modes.length;setMode();}; $('slider').oninput=slide; setMode();
}
function closeDetail(quiet){$('detail').className=''; if(!quiet&&state.pair){delete state.pair;writeHash();}}
function fromControls(){
  state.cat=$('f-cat').value; state.status=$('f-status').value; state.min=$('f-min').value; state.max=$('f-max').value;
  state.method=$('f-method').value; state.q=$('f-q').value; state.sort=$('f-sort').value; delete state.page;
  writeHash(); apply();
}
['f-cat','f-status','f-method','f-sort'].forEach(function(id){$(id).onchange=fromControls;});
['f-min','f-max','f-q'].forEach(function(id){$(id).oninput=fromControls;});
$('prev').onclick=function(){state.page=String(Math.max(1,(parseInt(state.page||'1',10)||1)-1));writeHash();render();};
$('next').onclick=function(){state.page=String((parseInt(state.page||'1',10)||1)+1);writeHash();render();};
$('gallery').onclick=function(ev){var c=ev.target.closest('.card'); if(!c)return; var r=view[+c.dataset.k];
  state.pair=r.c+'/'+r.i; writeHash(); openDetail(state.pair);};
$('detail').onclick=function(ev){if(ev.target.id==='detail'||ev.target.id==='close')closeDetail();};
document.addEventListener('keydown',function(ev){if(ev.key==='Escape')closeDetail();});
window.addEventListener('hashchange',function(){readHash();apply();});
document.addEventListener('error',function(ev){var t=ev.target; if(t.tagName!=='IMG'||!t.dataset.label)return;
  var sp=document.createElement('span'); sp.className='noimg'; sp.textContent=t.dataset.label+': missing'; t.replaceWith(sp);},true);
// chunks load one after another; the view is refreshed as they arrive
// search text and entropy made as rows arrive, so the first search or sort does not pay for them
var prepped=0;
function prep(){for(;prepped<rows.length;prepped++){hay(rows[prepped]);entropy(rows[prepped]);}}
EH.onchunk=function(){prep(); if(!dirty){dirty=true;setTimeout(function(){dirty=false;apply();},0);}};
EH.done=function(){EH.loading=false;prep();apply();EH.ready=true;EH.loaded_ms=performance.now();};
readHash(); apply();
if(location.hash.length>1)$('explore').scrollIntoView();   // a link to a view opens at the gallery
EH.start();
})();
]=]

-- The loader, inlined before any data: rows accumulate in EH.rows; with
-- meta.chunks (file names) each is added as a <script> once the previous one
-- ran, so the first rows paint before the last ones arrive.
page.LOADER = [=[
window.EH={rows:[],loading:true,
// rs: pairs as the JSON report has them; fs: their pictures [thumb original, thumb edited, original, more, edited]
chunk:function(k,rs,fs){for(var i=0;i<rs.length;i++){var r=rs[i],f=(fs&&fs[i])||[];
  this.rows.push({c:r.category,i:r.id,n:r.instruction,d:r.description,s:r.score,e:r.error,t:r.text,m:r.score_method,
    p:r.probs,es:r.edit_seconds,ss:r.score_seconds,pv:r.provenance,to:f[0],te:f[1],o:f[2],x:f[3],im:f[4]});}
  if(this.onchunk)this.onchunk(k);},
start:function(){var self=this,list=(self.meta.chunks||[]).slice();
  (function next(){if(!list.length){self.done();return;}var s=document.createElement('script');s.src=list.shift();
    s.onload=next;s.onerror=function(){self.load_error=s.src;next();};document.head.appendChild(s);})();}};
]=]

-- A select's options, each value its own label (they follow an "all").
local function options(H, values)
  local o = {}
  for _, v in ipairs(values) do o[#o + 1] = ('<option value="%s">%s</option>'):format(H(v), H(v)) end
  return table.concat(o)
end

-- Both pages' pair list: its heading, the controls (the category select
-- first, then the page's own filters, then the count), the pager, the list.
local function pair_list(H, heading, cats, filters, list)
  return '<h2 id="explore">' .. heading .. '</h2><div id="controls">'
    .. '<label>category <select id="f-cat"><option value="">all</option>' .. options(H, cats) .. '</select></label>'
    .. filters
    .. '<span id="count"></span></div>'
    .. '<div id="pager"><button id="prev">‹ prev</button><span id="pageno"></span><button id="next">next ›</button></div>'
    .. list
end

-- The explorer's controls and placeholders; cats: category names, methods: score_method values seen.
function page.controls(H, cats, methods)
  return pair_list(H, "样本 / Pairs", cats,
    '<label>status <select id="f-status"><option value="">all</option>'
    .. '<option value="scored">scored</option><option value="failed">failed</option></select></label>'
    .. '<label>score ≥ <input id="f-min" type="number" step="any"></label><label>score &lt; <input id="f-max" type="number" step="any"></label>'
    .. '<label>method <select id="f-method"><option value="">all</option>' .. options(H, methods) .. '</select></label>'
    .. '<label>search <input id="f-q" type="search" placeholder="instruction, description, judge text"></label>'
    .. '<label>sort <select id="f-sort"><option value="">dataset order</option><option value="score-asc">score ↑ (worst first)</option>'
    .. '<option value="score-desc">score ↓</option><option value="edit-desc">edit time ↓</option><option value="edit-asc">edit time ↑</option>'
    .. '<option value="conf-desc">judge confidence ↓ (low entropy first)</option><option value="conf-asc">judge confidence ↑</option></select></label>',
    '<div class="gallery" id="gallery"></div>'
    .. '<div id="detail"><div class="box"><button id="close">close ✕</button><div id="detail-body"></div></div></div>')
end

-- The comparison page's pair list: category, search (id), Δ range, sort;
-- the view in the hash as on the report page.
function page.compare_controls(H, cats)
  return pair_list(H, "所有样本 / All paired pairs", cats,
    '<label>Δ ≥ <input id="f-min" type="number" step="any"></label>'
    .. '<label>Δ ≤ <input id="f-max" type="number" step="any"></label>'
    .. '<label>search id <input id="f-q" type="search"></label><label>sort <select id="f-sort">'
    .. '<option value="">|Δ| ↓ (moved most first)</option><option value="d-asc">Δ ↑ (B worse first)</option>'
    .. '<option value="d-desc">Δ ↓ (B better first)</option><option value="a-asc">A score ↑</option>'
    .. '<option value="b-asc">B score ↑</option></select></label>',
    '<table id="pairs"><thead><tr><th class="l">category</th><th class="l">id</th><th><span class="ab a">A</span></th>'
    .. '<th><span class="ab b">B</span></th><th>Δ (B−A)</th></tr></thead><tbody id="rows"></tbody></table>')
end

page.COMPARE_JS = [=[
(function(){
'use strict';
var rows=window.EHC, $=function(id){return document.getElementById(id);}, state={}, view=[], PAGE=100;
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c];});}
var SORTS={'':function(r){return -Math.abs(r.d);},'d-asc':function(r){return r.d;},'d-desc':function(r){return -r.d;},
  'a-asc':function(r){return r.a;},'b-asc':function(r){return r.b;}};
function readHash(){var q=new URLSearchParams(location.hash.replace(/^#/,'')); state={};
  ['cat','min','max','q','sort','page'].forEach(function(k){var v=q.get(k); if(v!==null&&v!=='')state[k]=v;});
  $('f-cat').value=state.cat||''; $('f-min').value=state.min||''; $('f-max').value=state.max||'';
  $('f-q').value=state.q||''; $('f-sort').value=state.sort||'';}
function writeHash(){var q=new URLSearchParams(); Object.keys(state).forEach(function(k){if(state[k])q.set(k,state[k]);});
  var h=q.toString(); history.replaceState(null,'',h?'#'+h:location.pathname);}
function apply(){var lo=parseFloat(state.min), hi=parseFloat(state.max), q=(state.q||'').toLowerCase(), out=[];
  rows.forEach(function(r,j){if(state.cat&&r.c!==state.cat)return; if(!isNaN(lo)&&!(r.d>=lo))return;
    if(!isNaN(hi)&&!(r.d<=hi))return; if(q&&String(r.i).toLowerCase().indexOf(q)<0)return; r._j=j; out.push(r);});
  var key=SORTS[state.sort||'']; out.forEach(function(r){r._k=key(r);});
  out.sort(function(a,b){return a._k-b._k||a._j-b._j;}); view=out; render();}
function render(){var n=view.length, pages=Math.max(1,Math.ceil(n/PAGE)), p=Math.min(pages,Math.max(1,parseInt(state.page||'1',10)||1));
  var h=[]; for(var k=(p-1)*PAGE;k<Math.min(n,p*PAGE);k++){var r=view[k];
    h.push('<tr><td class="l">'+esc(r.c)+'</td><td class="l">'+esc(r.i)+'</td><td>'+r.a.toFixed(2)+'</td><td>'+r.b.toFixed(2)
      +'</td><td>'+(r.d>0?'+':'')+r.d.toFixed(2)+'</td></tr>');}
  $('rows').innerHTML=h.join(''); $('count').textContent=n+' / '+rows.length;
  $('pageno').textContent='page '+p+' / '+pages; $('prev').disabled=p<=1; $('next').disabled=p>=pages;}
function fromControls(){state.cat=$('f-cat').value; state.min=$('f-min').value; state.max=$('f-max').value;
  state.q=$('f-q').value; state.sort=$('f-sort').value; delete state.page; writeHash(); apply();}
['f-cat','f-sort'].forEach(function(id){$(id).onchange=fromControls;});
['f-min','f-max','f-q'].forEach(function(id){$(id).oninput=fromControls;});
$('prev').onclick=function(){state.page=String(Math.max(1,(parseInt(state.page||'1',10)||1)-1));writeHash();render();};
$('next').onclick=function(){state.page=String((parseInt(state.page||'1',10)||1)+1);writeHash();render();};
window.addEventListener('hashchange',function(){readHash();apply();});
readHash(); apply();
})();
]=]

return page
