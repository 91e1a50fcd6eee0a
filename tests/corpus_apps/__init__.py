"""The corpus apps that no package ships ready to run, each written as its package's own docs show.

Every other app of the corpus is a package's own module or shipped example, imported untouched
(see ``tests/corpus_support.py``). These few are the documented quick start of a package that ships
no runnable app, kept as close to the docs as running under two gunicorn workers allows; each
module's docstring says which page it follows and what, if anything, differs (a SQLite file in
place of an in-memory database, so that both workers see one user table; a password we can look
for in the output). None of them imports or mentions flask-sigobs.
"""
