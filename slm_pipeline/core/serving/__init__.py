"""`slm-pipeline serve`'s HTTP stack: FastAPI on uvicorn (app.py), the OpenAI wire format (protocol.py), the
bounded generation queue (admission.py), in-process and upstream generation backends (backends.py,
upstream.py), the anonymized question log (questions.py), request-id logging (logs.py) and the server of one
replica (server.py). core/serve.py assembles them from the pipeline config. Never imports dagster."""
