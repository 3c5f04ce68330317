-- The order service's tables (the same for all three versions).
CREATE TABLE customers (
    id      bigint PRIMARY KEY,
    name    text NOT NULL,
    credit  numeric(12, 2) NOT NULL CHECK (credit >= 0)
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total       numeric(12, 2) NOT NULL,
    note        text
);
CREATE TABLE order_lines (
    order_id bigint NOT NULL REFERENCES orders (id),
    sku      text NOT NULL,
    qty      int NOT NULL CHECK (qty > 0),
    price    numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, sku)
);
