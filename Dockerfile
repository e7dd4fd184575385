FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["preau", "serve", "--host", "0.0.0.0"]
