"""
Active learning on a folder of image files
==========================================

A pool that stays on disk: a folder of PNG files, one sub-folder per class,
read with :func:`sklearn_crtcl.datasets.load_image_folder` as a
:class:`~sklearn_crtcl.DatasetArray`. The labeled images are read into
memory for training; the pool is streamed through a ``DataLoader`` when the
query strategy scores it (only the candidates are read). Here the folder is
written first, from scikit-learn's digits upscaled to 16x16 colour images.
"""

# %%
# Write the folder: ``root/<class>/<index>.png``. ``SKLEARN_CRTCL_SMOKE=1``
# runs the example at smoke size.
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from sklearn_crtcl import ResNetClassifier
from sklearn_crtcl.datasets import load_image_folder
from sklearn_crtcl.query import entropy_sampling

torch.set_num_threads(1)  # small networks on a CPU train fastest on one thread

SMOKE = os.environ.get("SKLEARN_CRTCL_SMOKE") == "1"
digits = load_digits()
n_images = 300 if SMOKE else 1000
root = Path(tempfile.mkdtemp()) / "digits"
colours = np.array([[255, 80, 80], [80, 200, 80], [80, 80, 255]], dtype=np.float32)
for i in range(n_images):
    gray = np.kron(digits.images[i] / 16, np.ones((2, 2)))  # 8x8 -> 16x16, in [0, 1]
    rgb = (gray[..., None] * colours[i % 3]).astype(np.uint8)
    folder = root / f"digit_{digits.target[i]}"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / f"{i:04d}.png")
print(f"wrote {n_images} PNG files in {len(list(root.iterdir()))} class folders")

# %%
# Read it: ``X`` is a DatasetArray (nothing is decoded yet), ``y`` the labels.
data = load_image_folder(root)
X, y = data.data, data.target
print(f"X: {type(X).__name__} of shape {X.shape}, dtype {X.dtype}; "
      f"classes {list(data.target_names[:3])}...")

# %%
# Train on a random labeled set (``X[labeled]`` reads those images into a
# NumPy array), then query the most uncertain images of the pool by their
# row indices: the strategy reads the candidates only.
rng = np.random.RandomState(0)
labeled = np.sort(rng.choice(len(X), 100, replace=False))
pool = np.setdiff1d(np.arange(len(X)), labeled)
net = ResNetClassifier(module__width=8, max_epochs=3 if SMOKE else 30, batch_size=32,
                       augment=None, random_state=0)
net.fit(X[labeled], y[labeled])
accuracy = np.mean(net.predict(X[pool]) == y[pool])
print(f"accuracy on the pool after {len(labeled)} labels: {accuracy:.3f}")
query = entropy_sampling(net, X, n_instances=8, pool_indices=pool, subset_size=200,
                         random_state=0)
print(f"queried rows: {query.tolist()}")

# %%
# The queried images, with their classes (what an annotator would label next).
fig, axes = plt.subplots(1, len(query), figsize=(1.5 * len(query), 2))
images = X[query]  # (8, 3, 16, 16) in [0, 1]
for ax, image, row in zip(axes, images, query):
    ax.imshow(image.transpose(1, 2, 0))
    ax.set_title(data.target_names[y[row]].replace("digit_", ""), fontsize=9)
    ax.axis("off")
fig.suptitle("The 8 images entropy sampling queries next (true class above)")
plt.show()

# %%
# The folder was only needed while images were read; remove it.
shutil.rmtree(root.parent)
