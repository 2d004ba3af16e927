# Regenerates the fixtures with Pillow (pip install pillow): python3 generate.py, run in this folder.
from PIL import Image, ImageDraw
W,H=21,13
def img(mode="RGB"):
    im=Image.new(mode,(W,H),(200,30,60) if mode=="RGB" else (200,30,60,128))
    d=ImageDraw.Draw(im); d.line((0,0,W,H),fill=(10,200,30) if mode=="RGB" else (10,200,30,255))
    return im
img().save("baseline.jpg",quality=80)
img().save("progressive.jpg",quality=80,progressive=True)
img("RGBA").save("rgba.png")
img().save("interlaced.png",interlace=1)
img().convert("P").save("still.gif")
f1=img().convert("P"); f2=img().transpose(Image.FLIP_LEFT_RIGHT).convert("P")
f1.save("anim.gif",save_all=True,append_images=[f2],duration=100,loop=0)
img().save("lossy.webp",quality=70)
img().save("lossless.webp",lossless=True)
img("RGBA").save("alpha.webp",quality=70)
img().save("anim.webp",save_all=True,append_images=[img().transpose(Image.FLIP_LEFT_RIGHT)],duration=100)
img().save("still.avif",quality=50)
img().save("rgb24.bmp")
Image.new("RGB",(32,32),(1,2,3)).save("icon.ico",sizes=[(16,16),(32,32)])
img().save("plain.tif")
img().save("lzw.tif",compression="tiff_lzw")
