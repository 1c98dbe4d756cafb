"""``bestchat plugin new``: writes a new plugin package (provider, tool or context strategy)
that installs and passes its own tests.

:mod:`bestchat.scaffold.names` turns the name given into the distribution, module and
registered names; :mod:`bestchat.scaffold.writer` renders the templates under ``templates/``
and writes the package; :mod:`bestchat.scaffold.command` is the command.
"""
