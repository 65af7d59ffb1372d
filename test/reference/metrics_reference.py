"""Reference values for test/metrics.test.ts, from the COCO caption evaluation code and NLTK.

Needs pycocoevalcap (https://github.com/tylin/coco-caption, or `pip install pycocoevalcap`) on PYTHONPATH and
NLTK (Debian: python3-nltk). Captions are given already tokenised (space-separated), so no PTB tokenizer runs.
    PYTHONPATH=/path/to/coco-caption /usr/bin/python3 test/reference/metrics_reference.py   (Debian python, for its NLTK)
"""
import json
import os
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from nltk.translate.bleu_score import corpus_bleu

# Five images, Flickr8k-like references; candidates of various lengths and overlaps (>= 4 words each).
gts = {
    "a": ["a black dog is running through the grass", "a dog runs across a green field", "the black dog runs on the grass",
          "a dog running in a field", "a black dog is running outside"],
    "b": ["two children play in the water at the beach", "kids are playing in the ocean", "two kids splash in the waves",
          "children playing in the sea", "two young children play in shallow water"],
    "c": ["a man rides a bike down a dirt path", "a cyclist rides on a trail in the woods", "a person on a mountain bike",
          "a man is riding his bicycle on a dirt road", "a biker rides through the forest"],
    "d": ["a girl in a pink dress jumps", "a little girl jumping on the grass", "a young girl in pink is jumping in the air",
          "a child jumps high", "a girl is jumping"],
    "e": ["a group of people stand on a street", "people walking down a busy city street", "a crowd of people in the city",
          "many people are standing outside a building", "a busy street with lots of people"],
}
res = {
    "a": ["a black dog is running on the grass"],
    "b": ["two children are playing in the water"],
    "c": ["a man is riding a bike on a dirt road"],
    "d": ["a girl in a pink shirt is jumping"],
    "e": ["a man in a red shirt is standing in front of a building"],
}
bleu, _ = Bleu(4).compute_score(gts, res)
cider, cider_per = Cider().compute_score(gts, res)
rouge, _ = Rouge().compute_score(gts, res)
ids = list(gts.keys())
nltk = [corpus_bleu([[r.split() for r in gts[i]] for i in ids], [res[i][0].split() for i in ids], weights=w)
        for w in [(1,), (0.5, 0.5), (1/3, 1/3, 1/3), (0.25, 0.25, 0.25, 0.25)]]
one_bleu, _ = Bleu(4).compute_score({"a": gts["a"]}, {"a": res["a"]})
result = {"bleu": bleu, "nltk_corpus_bleu": nltk, "cider": cider, "cider_per_image": list(cider_per), "rougeL": rouge,
                  "bleu_single_image_a": one_bleu}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_reference.json")
with open(out, "w") as f:
    json.dump(result, f, indent=1)
print(f"wrote {out}")
