from nsinit.cli import run

run()
