"""`python cli.py ...` is `ticketflow ...` (the console script), for a checkout without install."""


from engine.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
