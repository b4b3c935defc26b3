from api.cli import serve

serve()
